import argparse
import logging

from sandbox.server import run

parser = argparse.ArgumentParser(prog="python -m sandbox", description="Twilio Verify sandbox")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8765)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
run(args.host, args.port)
