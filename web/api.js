// Talking to the server: the session routes (/session) and GraphQL (/graphql).
// Every request carries the CSRF header; the session cookie is HttpOnly and sent by the browser.
// Failures become ApiError with a code and the request id; what the user reads is chosen from
// the code by messages.js, never the server's or the browser's own text.

const CSRF_HEADERS = { "X-Requested-With": "licensing-tab" };

export class ApiError extends Error {
  constructor({ status = 0, code = "UNKNOWN", requestId = "", retryAfterSeconds = null } = {}) {
    super(code);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function firstCode(body) {
  const error = body && Array.isArray(body.errors) ? body.errors[0] : null;
  return error?.extensions?.code || (typeof body?.code === "string" ? body.code : "");
}

async function send(path, { method = "GET", json } = {}) {
  const headers = { ...CSRF_HEADERS, Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError({ code: "NETWORK" });
  }
  const requestId = response.headers.get("X-Request-ID") || "";
  const body = await readJson(response);
  if (!response.ok) {
    const retryAfter = Number(response.headers.get("Retry-After"));
    throw new ApiError({
      status: response.status,
      code: firstCode(body) || `HTTP_${response.status}`,
      requestId,
      retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    });
  }
  return { body: body || {}, requestId };
}

/** Who is signed in: {district, districtName, timeZone, tokenName, permissions};
 * ApiError 401 when nobody. */
export const currentSession = async () => (await send("/session")).body;
export const signIn = async (token) => (await send("/session", { method: "POST", json: { token } })).body;
export const signOut = async () => (await send("/session", { method: "DELETE" })).body;

/** A GraphQL operation; resolves to {data, errors, requestId} (errors: [] when none). */
export async function graphql(query, variables = {}) {
  const { body, requestId } = await send("/graphql", { method: "POST", json: { query, variables } });
  return { data: body.data || null, errors: body.errors || [], requestId };
}
