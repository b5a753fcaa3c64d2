// The REST client: openapi-fetch typed by the generated `paths`, so a renamed route or field
// is a compile error here. Every failure becomes an ApiError with a readable message.
import createClient from "openapi-fetch";
import type { components, paths } from "../gen/api";
import { headers } from "./auth";
import { describeStatus } from "./errors";

export type Schemas = components["schemas"];

export const api = createClient<paths>({ baseUrl: "" });
/** Fired when the gateway no longer accepts the credential (expired or revoked session). */
export const SIGNED_OUT = "switchboard:signed-out";

api.use({
  onRequest({ request }) {
    for (const [name, value] of Object.entries(headers())) request.headers.set(name, value);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) dispatchEvent(new Event(SIGNED_OUT));
    return response;
  },
});

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function detailOf(error: unknown): string {
  if (error && typeof error === "object" && "detail" in error) {
    const detail = (error as { detail: unknown }).detail;
    return typeof detail === "string" ? detail : "";
  }
  return "";
}

/** The body of a successful call, or an ApiError naming what went wrong in words. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection.");
  }
  if (!result.response.ok) {
    throw new ApiError(result.response.status, describeStatus(result.response.status, detailOf(result.error)));
  }
  return result.data as T;
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
