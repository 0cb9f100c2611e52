// A login server in TypeScript, typed by what openapi-typescript generates from twostep's
// /openapi.json (generated/api.d.ts, made by test_generated_types.py). tsc checks it: what a
// login server writes must type-check, and each `@ts-expect-error` line is a mistake the types
// must catch (tsc fails if one stops being an error). The docs' request bodies are checked
// beside it, in generated/bodies.ts.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api";

type Schemas = components["schemas"];
type Problem = Schemas["Problem"];

export type Body<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { "application/json": infer B } };
}
  ? B
  : never;

type Answer<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends {
  responses: infer R;
}
  ? S extends keyof R
    ? R[S]
    : never
  : never;

// Optional means optional: the smallest bodies the docs show.
export const smallest: Body<"/v1/verifications", "post"> = { to: "+14155550123" };
export const byEmail: Body<"/v1/verifications", "post"> = { to: "ada@example.com", channel: "email" };
export const phone: Body<"/v1/users/{user_id}/factors", "post"> = { phone: "+14155550123" };
export const challenge: Body<"/v1/users/{user_id}/challenges", "post"> = {};
// @ts-expect-error: a verification needs its destination
export const nowhere: Body<"/v1/verifications", "post"> = { channel: "sms" };
// @ts-expect-error: channels are the API's, not any string
export const pigeon: Body<"/v1/verifications", "post"> = { to: "+14155550123", channel: "pigeon" };

// A problem: `limit` and `errors` are there only when they say, and never null.
export const refused: Problem = {
  type: "https://twostep.dev/problems/no-verified-factor",
  title: "Conflict",
  status: 409,
  detail: "two-step authentication is not on for this user",
  code: "no_verified_factor",
};
// @ts-expect-error: codes are the table's, not any string
export const unknownCode: Problem = { ...refused, code: "no_such_code" };
// @ts-expect-error: absent, never null
export const nullLimit: Problem = { ...refused, limit: null };

export function whatToDo(problem: Problem): string {
  // Exhaustive over the codes a login server branches on; the rest is "try later" or a bug.
  switch (problem.code) {
    case "rate_limited":
    case "user_locked":
    case "max_attempts_reached":
      return `wait${problem.limit ? ` (${problem.limit})` : ""}`;
    case "invalid_phone_number":
    case "invalid_email_address":
      return "ask again";
    case "no_verified_factor":
      return "enrol";
    default:
      return problem.detail;
  }
}

// Every answer's headers, and the ones only some answers carry.
type Created = Answer<"/v1/verifications", "post", 202>;
export const requestId: Created["headers"]["X-Request-Id"] = "4bf92f3577b34da6";
export const noStore: Created["headers"]["Cache-Control"] = "no-store";
export const replayed: Created["headers"]["Idempotent-Replayed"] = "true";
export const retryAfter: Answer<"/v1/verifications", "post", 429>["headers"]["Retry-After"] = 30;
export const tooLarge: Answer<"/v1/verifications/{verification_id}", "get", 413>["content"]["application/problem+json"] =
  { ...refused, status: 413, code: "payload_too_large" };
export const allow: Answer<"/v1/limits", "get", 405>["headers"]["Allow"] = "GET";
// @ts-expect-error: a replayed answer says "true" or nothing
export const notReplayed: Created["headers"]["Idempotent-Replayed"] = "false";

// Readiness has a shape.
export const ready: Answer<"/readyz", "get", 200>["content"]["application/json"] = {
  status: "ready",
  workers: 1,
  last_heartbeat_seconds: null,
};

// A factor says why it is disabled.
export const inUse: Schemas["FactorOut"]["disabled_reason"] = "in_use";

// The login flow as a TypeScript login server writes it with openapi-fetch.
export async function secondStep(baseUrl: string, key: string, userId: string, typed: () => Promise<string>) {
  const twostep = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });
  const started = await twostep.POST("/v1/users/{user_id}/challenges", {
    params: { path: { user_id: userId } },
    body: {},
  });
  if (started.error) return whatToDo(started.error);
  const sent = await twostep.GET("/v1/verifications/{verification_id}", {
    params: { path: { verification_id: started.data.id }, query: { wait: 30 } },
  });
  if (sent.error || sent.data.status !== "pending") return "not sent";
  const checked = await twostep.POST("/v1/verifications/{verification_id}/checks", {
    params: { path: { verification_id: sent.data.id }, query: { wait: 10 } },
    body: { code: await typed() },
  });
  if (checked.error) return whatToDo(checked.error);
  return checked.data.status === "approved" ? "in" : "wrong code";
}
