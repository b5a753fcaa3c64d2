// Readable words for every error the page can meet: WebSocket `error` frames (by code) and
// HTTP statuses. The code stays visible (small) so a support request can quote it. A code
// added on the server without words here falls back to the server's own message.
import type { ErrorCode } from "../gen/frames";

const CODES: Partial<Record<ErrorCode, string>> = {
  invalid_json: "The page sent something the server could not read.",
  unknown_type: "The page and the server disagree about the protocol; reload the page.",
  unauthorized: "Your session has ended. Sign in again.",
  too_deep: "That was refused: it is nested too deeply.",
  invalid_message: "That message was refused as invalid.",
  message_too_large: "That message is too long. Shorten it and send again.",
  unknown_turn: "That answer is no longer available.",
  unknown_client: "That client does not exist.",
  forbidden: "You are not allowed to do that.",
  turn_timeout: "No answer came in time. Try again.",
  internal_error: "Something went wrong on the server.",
  service_unavailable: "A service is not available right now. Retrying may help.",
  provider_rate_limited: "The model is rate limiting us. Wait a moment and try again.",
  provider_overloaded: "The model is overloaded. Try again shortly.",
  provider_unavailable: "The model is unavailable right now.",
  provider_timeout: "The model took too long to answer.",
  provider_bad_request: "The model refused the request.",
  provider_auth: "The model provider rejected our credentials (ask your admin).",
  provider_error: "The model failed to answer.",
  unknown_action: "That action no longer exists.",
  action_already_decided: "Someone already decided this action.",
  action_expired: "This action expired before anyone decided it.",
  action_not_undoable: "This action cannot be undone.",
  invalid_arguments: "Those values are not valid for this tool.",
  rate_limited: "Slow down: too many requests. Try again in a moment.",
  quota_exceeded: "Your organisation's quota or monthly budget is used up.",
};

const STATUSES: Record<number, string> = {
  400: "The request was refused as invalid.",
  401: "Your session has ended. Sign in again.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  409: "That conflicts with something that already exists.",
  410: "That is no longer available.",
  413: "That is too large.",
  422: "Some values are not valid.",
  429: "Slow down: too many requests. Try again in a moment.",
  503: "A service is not available right now. Try again shortly.",
};

export function describeCode(code: string, fallback = ""): string {
  return CODES[code as ErrorCode] ?? (fallback || `Error: ${code}`);
}

export function describeStatus(status: number, detail = ""): string {
  const base = STATUSES[status] ?? `The server answered ${status}.`;
  return detail && detail !== base ? `${base} ${detail}` : base;
}
