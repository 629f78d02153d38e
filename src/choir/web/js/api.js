// REST calls to the same origin. Errors come back as ApiError {status, code, message}, the server's
// {code, message} body. While any call is in flight the page shows a progress bar.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A REST call that takes longer than this is abandoned, so no button stays busy forever.
const REQUEST_TIMEOUT_MS = 15000;
let inFlight = 0;

function busy(delta) {
  inFlight += delta;
  document.documentElement.toggleAttribute("data-busy", inFlight > 0);
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  busy(+1);
  try {
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      const timedOut = err && err.name === "TimeoutError";
      throw new ApiError(0, timedOut ? "timeout" : "network", timedOut ? "The server took too long to answer." : "Cannot reach the server.");
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const code = (data && data.code) || `http_${response.status}`;
      const message = (data && data.message) || response.statusText || "Request failed";
      throw new ApiError(response.status, code, message);
    }
    return data;
  } finally {
    busy(-1);
  }
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body = {}) => call("POST", path, body),
  patch: (path, body) => call("PATCH", path, body),
};

export const enc = encodeURIComponent;
