// Talking to the server: the session routes (/session) and GraphQL (/graphql).
// Every request carries the CSRF header; the session cookie is HttpOnly and sent by the browser.

const CSRF_HEADERS = { "X-Requested-With": "licensing-tab" };

export class ApiError extends Error {
  constructor(message, { status = 0, code = "ERROR" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function firstError(body, fallback) {
  const error = body && Array.isArray(body.errors) ? body.errors[0] : null;
  return {
    message: (error && error.message) || fallback,
    code: (error && error.extensions && error.extensions.code) || "ERROR",
  };
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
    throw new ApiError("The server cannot be reached. Check your connection; the page keeps trying.", {
      code: "NETWORK",
    });
  }
  const body = await readJson(response);
  if (!response.ok) {
    const { message, code } = firstError(body, `The server answered ${response.status}.`);
    throw new ApiError(message, { status: response.status, code });
  }
  return body;
}

/** Who is signed in: {district, tokenName, permissions}; ApiError 401 when nobody. */
export const currentSession = () => send("/session");
export const signIn = (token) => send("/session", { method: "POST", json: { token } });
export const signOut = () => send("/session", { method: "DELETE" });

/** A GraphQL operation; resolves to {data, errors} (errors: [] when none).
 *
 * Sent by its SHA-256 (automatic persisted queries): the text goes only when the server asks
 * for it (PERSISTED_QUERY_NOT_FOUND). Queries go as GET with If-None-Match and the ETag of the
 * last answer to the same query and variables: a 304 reuses that answer, nothing is re-read.
 * Mutations go as POST. See docs/caching.md. */
export async function graphql(query, variables = {}) {
  const hash = await sha256Hex(query);
  const isMutation = /^\s*mutation\b/.test(query);
  if (hash === null) {
    // No Web Crypto (a page not served over https or from localhost): the plain document.
    const body = await send("/graphql", { method: "POST", json: { query, variables } });
    return { data: body.data || null, errors: body.errors || [] };
  }
  const extensions = { persistedQuery: { version: 1, sha256Hash: hash } };
  const operationName = (/^\s*(?:query|mutation)\s+(\w+)/.exec(query) || [])[1] || null;
  const request = { operationName, variables, extensions };
  let body = isMutation
    ? await send("/graphql", { method: "POST", json: request })
    : await getQuery(request, hash);
  if (notFound(body)) {
    body = isMutation
      ? await send("/graphql", { method: "POST", json: { ...request, query } })
      : await getQuery({ ...request, query }, hash);
  }
  return { data: body.data || null, errors: body.errors || [] };
}

// The last answer to each query (by hash and variables) and its ETag.
const lastAnswers = new Map();

async function getQuery(request, hash) {
  const params = new URLSearchParams({
    variables: JSON.stringify(request.variables),
    extensions: JSON.stringify(request.extensions),
  });
  if (request.operationName) params.set("operationName", request.operationName);
  if (request.query !== undefined) params.set("query", request.query);
  const key = `${hash} ${params.get("variables")}`;
  const last = lastAnswers.get(key);
  const headers = { ...CSRF_HEADERS, Accept: "application/json" };
  if (last) headers["If-None-Match"] = last.etag;
  let response;
  try {
    response = await fetch(`/graphql?${params}`, {
      method: "GET",
      headers,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError("The server cannot be reached. Check your connection; the page keeps trying.", {
      code: "NETWORK",
    });
  }
  if (response.status === 304 && last) return last.body;
  const body = await readJson(response);
  if (!response.ok) {
    const { message, code } = firstError(body, `The server answered ${response.status}.`);
    throw new ApiError(message, { status: response.status, code });
  }
  const etag = response.headers.get("ETag");
  if (etag && body) lastAnswers.set(key, { etag, body });
  else lastAnswers.delete(key);
  return body;
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
