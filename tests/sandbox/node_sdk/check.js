// Twilio's Node SDK against the sandbox: where a broken setup would pass locally, the sandbox
// answers as Twilio does. Prints one JSON object of outcomes; tests/sandbox/test_node_sdk.py
// asserts them. Usage: node check.js <sandbox base URL>
"use strict";

const twilio = require("twilio");
const RequestClient = require("twilio/lib/base/RequestClient");

const base = process.argv[2];
const ACCOUNT = "AC" + "0".repeat(32);
const DEFAULT_SERVICE = "VA" + "0".repeat(32);

// Every *.twilio.com request goes to the sandbox instead (Twilio's custom-client pattern).
class SandboxClient {
  constructor() {
    this.http = new RequestClient();
  }

  request(opts) {
    const url = new URL(opts.uri);
    if (url.hostname.endsWith("twilio.com")) {
      opts.uri = base + url.pathname + url.search;
    }
    return this.http.request(opts);
  }
}

function client(token) {
  return twilio(ACCOUNT, token, { httpClient: new SandboxClient() });
}

async function outcome(call) {
  try {
    const value = await call();
    return { ok: true, value };
  } catch (error) {
    return { ok: false, status: error.status, code: error.code };
  }
}

function number(prefix) {
  return prefix + String(Math.floor(Math.random() * 10 ** (12 - prefix.length))).padStart(12 - prefix.length, "0");
}

async function main() {
  const good = client("sandbox");
  const results = {};
  results.wrongToken = await outcome(() => client("not-the-token").verify.v2.services(DEFAULT_SERVICE).fetch());
  results.unknownService = await outcome(() =>
    good.verify.v2.services("VA" + "9".repeat(32)).verifications.create({ to: number("+1212"), channel: "sms" }),
  );
  const landline = "+14155550207";
  results.landlineSms = await outcome(() =>
    good.verify.v2.services(DEFAULT_SERVICE).verifications.create({ to: landline, channel: "sms" }),
  );
  const call = await outcome(() =>
    good.verify.v2.services(DEFAULT_SERVICE).verifications.create({ to: landline, channel: "call" }),
  );
  results.landlineCall = call.ok ? { ok: true, status: call.value.status } : call;
  results.customCodeOff = await outcome(() =>
    good.verify.v2.services(DEFAULT_SERVICE).verifications.create({
      to: number("+1646"), channel: "sms", customCode: "482913",
    }),
  );
  const made = await good.verify.v2.services.create({ friendlyName: "Node check", codeLength: 6, customCodeEnabled: true });
  const fetched = await good.verify.v2.services(made.sid).fetch();
  results.service = { sid: made.sid, friendlyName: fetched.friendlyName, customCodeEnabled: fetched.customCodeEnabled };
  const customTo = number("+1305");
  await good.verify.v2.services(made.sid).verifications.create({ to: customTo, channel: "sms", customCode: "482913" });
  const custom = await good.verify.v2.services(made.sid).verificationChecks.create({ to: customTo, code: "482913" });
  results.customCodeOn = custom.status;
  const attempts = await good.verify.v2.verificationAttempts.list({ verificationSid: custom.sid });
  results.attempts = attempts.map((attempt) => attempt.conversionStatus);
  const busy = number("+1713");
  const sends = [];
  for (let i = 0; i < 6; i += 1) {
    const sent = await outcome(() => good.verify.v2.services(made.sid).verifications.create({ to: busy, channel: "sms" }));
    sends.push(sent.ok ? 201 : sent.code);
    if (sent.ok) {
      await good.verify.v2.services(made.sid).verifications(sent.value.sid).update({ status: "canceled" });
    }
  }
  results.sendsToOneNumber = sends;
  const voip = await good.lookups.v2.phoneNumbers("+14155550303").fetch({ fields: "line_type_intelligence,sim_swap" });
  results.lookup = {
    lineType: voip.lineTypeIntelligence && voip.lineTypeIntelligence.type,
    swapped: voip.simSwap && voip.simSwap.lastSimSwap && voip.simSwap.lastSimSwap.swapped_in_period,
  };
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
