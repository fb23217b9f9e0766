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

/** A GraphQL operation; resolves to {data, errors} (errors: [] when none). */
export async function graphql(query, variables = {}) {
  const body = await send("/graphql", { method: "POST", json: { query, variables } });
  return { data: body.data || null, errors: body.errors || [] };
}
