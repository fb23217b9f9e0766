// Talking to the server: the session routes (/session) and GraphQL (/graphql).
// Every request carries the CSRF header; the session cookie is HttpOnly and sent by the browser.
// Failures become ApiError with a code and the request id; what the user reads is chosen from
// the code by messages.js, never the server's or the browser's own text.
// GraphQL documents go by their SHA-256 (automatic persisted queries), queries as GET with
// If-None-Match, so that an unchanged answer is a 304 (docs/caching.md).

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

/** fetch, with a failure to reach the server as ApiError NETWORK. */
async function request(path, init) {
  try {
    return await fetch(path, { credentials: "same-origin", cache: "no-store", ...init });
  } catch {
    throw new ApiError({ code: "NETWORK" });
  }
}

/** The answer's JSON and request id; a refusal (not 2xx) as ApiError with its code. */
async function answer(response) {
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

async function send(path, { method = "GET", json } = {}) {
  const headers = { ...CSRF_HEADERS, Accept: "application/json" };
  const init = { method, headers };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  return answer(await request(path, init));
}

/** Who is signed in: {district, districtName, timeZone, tokenName, permissions};
 * ApiError 401 when nobody. */
export const currentSession = async () => (await send("/session")).body;
export const signIn = async (token) => (await send("/session", { method: "POST", json: { token } })).body;
export const signOut = async () => (await send("/session", { method: "DELETE" })).body;

/** A GraphQL operation (a document from operations.js); resolves to {data, errors, requestId}
 * (errors: [] when none).
 *
 * Sent by its SHA-256: the text goes only when the server asks for it
 * (PERSISTED_QUERY_NOT_FOUND). Queries go as GET with If-None-Match and the ETag of the last
 * answer to the same query and variables: a 304 reuses that answer, nothing is re-read.
 * Mutations go as POST. */
export async function graphql(query, variables = {}) {
  const hash = await sha256Hex(query);
  const isMutation = /^\s*mutation\b/.test(query);
  if (hash === null) {
    // No Web Crypto (a page not served over https or from localhost): the plain document.
    const { body, requestId } = await send("/graphql", { method: "POST", json: { query, variables } });
    return result(body, requestId);
  }
  const extensions = { persistedQuery: { version: 1, sha256Hash: hash } };
  const operationName = (/^\s*(?:query|mutation)\s+(\w+)/.exec(query) || [])[1] || null;
  const operation = { operationName, variables, extensions };
  const run = (withText) => {
    const sent = withText ? { ...operation, query } : operation;
    return isMutation ? send("/graphql", { method: "POST", json: sent }) : getQuery(sent, hash);
  };
  let answered = await run(false);
  if (notFound(answered.body)) answered = await run(true);
  return result(answered.body, answered.requestId);
}

function result(body, requestId) {
  return { data: body.data || null, errors: body.errors || [], requestId };
}

// The last answer to each query (by hash and variables) and its ETag.
const lastAnswers = new Map();

async function getQuery(operation, hash) {
  const params = new URLSearchParams({
    variables: JSON.stringify(operation.variables),
    extensions: JSON.stringify(operation.extensions),
  });
  if (operation.operationName) params.set("operationName", operation.operationName);
  if (operation.query !== undefined) params.set("query", operation.query);
  const key = `${hash} ${params.get("variables")}`;
  const last = lastAnswers.get(key);
  const headers = { ...CSRF_HEADERS, Accept: "application/json" };
  if (last) headers["If-None-Match"] = last.etag;
  const response = await request(`/graphql?${params}`, { method: "GET", headers });
  if (response.status === 304 && last) {
    return { body: last.body, requestId: response.headers.get("X-Request-ID") || "" };
  }
  const answered = await answer(response);
  const etag = response.headers.get("ETag");
  if (etag) lastAnswers.set(key, { etag, body: answered.body });
  else lastAnswers.delete(key);
  return answered;
}

/** Forget every kept answer (after signing out: the next person's tags differ anyway). */
export function forgetAnswers() {
  lastAnswers.clear();
}

function notFound(body) {
  return Boolean(
    body &&
      Array.isArray(body.errors) &&
      body.errors.some((error) => error.extensions?.code === "PERSISTED_QUERY_NOT_FOUND"),
  );
}

const hashes = new Map();

/** The SHA-256 of the text's UTF-8, in lowercase hex; null without Web Crypto. */
async function sha256Hex(text) {
  if (hashes.has(text)) return hashes.get(text);
  if (!globalThis.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const hex = Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
  hashes.set(text, hex);
  return hex;
}
