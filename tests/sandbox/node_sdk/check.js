// Twilio's Node SDK against the sandbox: where a broken setup would pass locally, the sandbox
// answers as Twilio does. Prints one JSON object of outcomes; tests/sandbox/test_node_sdk.py
// asserts them. Usage: node check.js <sandbox base URL> <verify|factors>
//   verify:  Verifications, Services, Attempts and Lookup.
//   factors: the TOTP Factors API (an entity's factors and challenges), with RFC 6238 codes
//            computed here (node's crypto) on the sandbox's clock, which tests move ahead.
"use strict";

const crypto = require("crypto");
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

async function verifyChecks(good) {
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
  return results;
}

// --- RFC 6238 (TOTP) with node's crypto, as an authenticator app computes it.

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32Decode(text) {
  const bytes = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/=+$/, "").toUpperCase()) {
    const index = BASE32.indexOf(char);
    if (index < 0) {
      throw new Error(`not base32: ${JSON.stringify(text)}`);
    }
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

// The code for the time step holding `at` (Unix seconds), under the factor's own config
// (`alg`, `code_length`, `time_step`, as Twilio answers it).
function totp(secret, config, at) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / config.time_step)));
  const digest = crypto.createHmac(config.alg, base32Decode(secret)).update(counter).digest();
  const start = digest[digest.length - 1] & 0x0f;
  const binary = digest.readUInt32BE(start) & 0x7fffffff;
  return String(binary % 10 ** config.code_length).padStart(config.code_length, "0");
}

// A code of the right length that is none of the codes of the two steps either side of `at`'s:
// wrong however the sandbox's step sits against ours (skew 1).
function wrongCode(secret, config, at) {
  const near = new Set([-2, -1, 0, 1, 2].map((k) => totp(secret, config, at + k * config.time_step)));
  const modulus = 10 ** config.code_length;
  let candidate = (Number(totp(secret, config, at)) + Math.floor(modulus / 2)) % modulus;
  while (near.has(String(candidate).padStart(config.code_length, "0"))) {
    candidate = (candidate + 1) % modulus;
  }
  return String(candidate).padStart(config.code_length, "0");
}

// How far the sandbox's clock is ahead of this machine's (its own GET /sandbox/clock, as
// tests/support.py's SandboxClient.clock_offset reads it).
async function sandboxClockOffset() {
  const answer = await fetch(base + "/sandbox/clock");
  if (!answer.ok) {
    throw new Error(`GET /sandbox/clock answered ${answer.status}`);
  }
  return Number((await answer.json()).offset_seconds);
}

// A moment on the sandbox's clock with at least `needed` seconds left in its time step (sleeping
// into the next step if fewer), as tests/support.py's early_in_a_totp_step: codes made for it
// stay right (and the wrong one wrong) for that long plus a whole step, at a skew of one.
async function earlyInATotpStep(step, needed, offset) {
  const left = step - ((Date.now() / 1000 + offset) % step);
  if (left < needed) {
    await new Promise((resolve) => setTimeout(resolve, (left + 0.2) * 1000));
  }
  return Date.now() / 1000 + offset;
}

function identity() {
  return "user-" + crypto.randomUUID().replaceAll("-", ""); // 8 to 64 characters, no personal data
}

async function factorChecks(good) {
  const results = {};
  const service = good.verify.v2.services(
    (await good.verify.v2.services.create({ friendlyName: "Node TOTP check" })).sid,
  );
  const who = identity();
  const entity = service.entities(who);
  const created = await entity.newFactors.create({ friendlyName: "ada's phone", factorType: "totp" });
  results.created = {
    sid: created.sid,
    entitySid: created.entitySid,
    identity: created.identity,
    status: created.status,
    factorType: created.factorType,
    config: created.config,
    binding: created.binding,
  };
  const { secret } = created.binding;
  const { config } = created;
  const fetched = await entity.factors(created.sid).fetch();
  results.fetched = { status: fetched.status, binding: fetched.binding ?? null };

  const offset = await sandboxClockOffset();
  results.clockOffset = offset;
  const at = await earlyInATotpStep(config.time_step, 10, offset);
  const right = totp(secret, config, at);
  const wrong = wrongCode(secret, config, at);
  results.codes = { at, right, wrong };

  results.challengeUnverified = await outcome(() =>
    entity.challenges.create({ factorSid: created.sid, authPayload: right }),
  );
  const stillUnverified = await entity.factors(created.sid).update({ authPayload: wrong });
  const verified = await entity.factors(created.sid).update({ authPayload: right });
  results.verifyWrong = stillUnverified.status;
  results.verifyRight = verified.status;
  results.fetchedVerified = (await entity.factors(created.sid).fetch()).status;

  const challenge = await entity.challenges.create({ factorSid: created.sid, authPayload: wrong });
  results.challengeWrong = { sid: challenge.sid, status: challenge.status, factorSid: challenge.factorSid };
  const answered = await entity.challenges(challenge.sid).update({ authPayload: right });
  results.challengeRight = { status: answered.status, factorSid: answered.factorSid };
  const again = await entity.challenges(challenge.sid).fetch();
  results.challengeFetched = { sid: again.sid, status: again.status };
  results.challengeRightAtOnce = (
    await entity.challenges.create({ factorSid: created.sid, authPayload: right })
  ).status;

  // Five wrong codes use up a challenge: the sixth answer, even the right code, is refused.
  const capped = await entity.challenges.create({ factorSid: created.sid });
  const wrongAnswers = [];
  for (let i = 0; i < 5; i += 1) {
    wrongAnswers.push((await entity.challenges(capped.sid).update({ authPayload: wrong })).status);
  }
  results.challengeUsedUp = {
    first: capped.status,
    wrongAnswers,
    sixth: await outcome(() => entity.challenges(capped.sid).update({ authPayload: right })),
  };

  // Five wrong codes use up an unverified factor the same way.
  const second = await entity.newFactors.create({ friendlyName: "ada's tablet", factorType: "totp" });
  const secondWrong = wrongCode(second.binding.secret, second.config, at);
  const wrongTries = [];
  for (let i = 0; i < 5; i += 1) {
    wrongTries.push((await entity.factors(second.sid).update({ authPayload: secondWrong })).status);
  }
  results.factorUsedUp = {
    wrongTries,
    sixth: await outcome(() =>
      entity.factors(second.sid).update({ authPayload: totp(second.binding.secret, second.config, at) }),
    ),
  };

  results.unknownFactor = await outcome(() => entity.factors("YF" + "0".repeat(32)).fetch());
  results.otherEntitysFactor = await outcome(() => service.entities(identity()).factors(created.sid).fetch());
  results.badFactorType = await outcome(() =>
    service.entities(identity()).newFactors.create({ friendlyName: "ada's pager", factorType: "sms" }),
  );
  results.removed = await entity.factors(second.sid).remove();
  results.fetchRemoved = await outcome(() => entity.factors(second.sid).fetch());
  return results;
}

const CHECKS = { verify: verifyChecks, factors: factorChecks };

async function main() {
  const check = CHECKS[process.argv[3]];
  if (base === undefined || check === undefined) {
    throw new Error("usage: node check.js <sandbox base URL> <verify|factors>");
  }
  process.stdout.write(JSON.stringify(await check(client("sandbox"))));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
