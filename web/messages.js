// What the user reads when something fails: plain words chosen by the error's code. The text
// the server, GraphQL or the browser wrote is never shown (it may name internals); an unknown
// code gets the generic sentence with the request id, which Support can look up.

import { plural } from "./format.js";

const WORDS = {
  NETWORK: "The server cannot be reached. Check your connection; the page keeps trying.",
  UNAUTHENTICATED: "Your session has ended. Sign in again.",
  TOKEN_EXPIRED: "That API token has expired. Ask your administrator for a new token, then sign in with it.",
  SIGN_IN_THROTTLED:
    "Too many sign-ins with a wrong token came from your network. Wait a few minutes, check the token, then try again.",
  FORBIDDEN: "This needs the Manage Settings permission assigned to your role.",
  CSRF: "The request was refused because it did not come from this page. Reload the page and try again.",
  RATE_LIMITED: "Too many requests from your token just now. Wait a minute, then try again.",
  DATABASE_UNAVAILABLE: "The licensing service is briefly unavailable. The page keeps trying.",
  HTTP_502: "The licensing service is briefly unavailable. The page keeps trying.",
  HTTP_503: "The licensing service is briefly unavailable. The page keeps trying.",
  HTTP_504: "The licensing service is briefly unavailable. The page keeps trying.",
  LICENSE_NOT_AVAILABLE:
    "No license has been received for your district yet. Once Manage1to1 has issued it, select Force License Update.",
  LICENSE_SOURCE_UNAVAILABLE:
    "The Manage1to1 licensing server could not be reached. Your current license stays in place; try again later.",
  LICENSE_UPDATE_FAILED:
    "The licensing server did not send a usable license. Your current license stays in place; contact Manage1to1 Support if this continues.",
  MALFORMED_LICENSE:
    "The licensing server sent a license that could not be read. Your current license stays in place; contact Manage1to1 Support.",
  BAD_SIGNATURE:
    "The license received could not be verified, so it was not used. Your current license stays in place; contact Manage1to1 Support.",
  NO_TRUSTED_KEY:
    "The license received could not be verified, so it was not used. Contact Manage1to1 Support.",
  BAD_TRUSTED_KEY:
    "The license received could not be verified, so it was not used. Contact Manage1to1 Support.",
  WRONG_DISTRICT:
    "The licensing server sent a license for another district, so it was not used. Contact Manage1to1 Support.",
  STALE_RESPONSE:
    "The licensing server sent an out-of-date answer, so it was not used. Try again in a few minutes.",
  OLDER_LICENSE:
    "The licensing server sent an older license than the one you have, so your current license stays in place.",
};

/** Plain words for a failure with this code; for an unknown code, the generic sentence. */
export function describe(code, requestId = "") {
  if (WORDS[code]) return WORDS[code];
  const reference = requestId ? ` Reference: ${requestId}` : "";
  return `Something went wrong on our side; try again.${reference}`;
}

/** An ApiError (or anything thrown) in plain words. */
export function describeFailure(failure) {
  if (failure?.code === "RATE_LIMITED" && failure.retryAfterSeconds) {
    return `Too many requests from your token just now. Try again in ${plural(failure.retryAfterSeconds, "second")}.`;
  }
  return describe(failure?.code || "", failure?.requestId || "");
}

/** What a refused threshold means, by the payload error's code. */
export function thresholdProblem(code, { maximum, total }, requestId = "") {
  switch (code) {
    case "THRESHOLD_NEGATIVE":
      return "Enter 0 or more students.";
    case "THRESHOLD_ABOVE_TOTAL":
      return `The threshold cannot be more than your ${plural(total, "licensed seat")}. Enter a whole number from 0 to ${plural(maximum, "student")}.`;
    case "THRESHOLD_TOO_LARGE":
    case "BAD_USER_INPUT":
    case "GRAPHQL_VALIDATION_FAILED":
      return `Enter a whole number from 0 to ${plural(maximum, "student")}.`;
    default:
      return describe(code, requestId);
  }
}
