// The same login server on the client @hey-api/openapi-ts generates (generated/hey). Its own
// runtime code does not compile with exactOptionalPropertyTypes: tsconfig.hey.json leaves it off.
import { createClient } from "./generated/hey/client";
import { createCheck, createVerification, readVerification, startChallenge } from "./generated/hey/sdk.gen";
import type { Problem, VerificationCreate } from "./generated/hey/types.gen";

export const smallest: VerificationCreate = { to: "+14155550123" };
// @ts-expect-error: absent, never null
export const nullLimit: Problem = { type: "t", title: "T", status: 429, detail: "d", code: "rate_limited", limit: null };
// @ts-expect-error: codes are the table's
export const unknownCode: Problem = { type: "t", title: "T", status: 409, detail: "d", code: "nope" };

export async function secondStep(baseUrl: string, key: string, userId: string, typed: () => Promise<string>) {
  const client = createClient({ baseUrl, headers: { Authorization: `Bearer ${key}` } });
  const started = await startChallenge({ client, path: { user_id: userId }, body: {} });
  if (started.error) return started.error.code;
  const sent = await readVerification({ client, path: { verification_id: started.data.id }, query: { wait: 30 } });
  if (sent.error || sent.data.status !== "pending") return "not sent";
  const checked = await createCheck({ client, path: { verification_id: sent.data.id }, query: { wait: 10 }, body: { code: await typed() } });
  if (checked.error) return checked.error.limit ?? checked.error.code;
  const again = await createVerification({ client, body: smallest });
  return again.data?.status ?? checked.data.status;
}
