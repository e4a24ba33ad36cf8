/**
 * Stand-in for the `ws` package in the browser bundle. The sdk's client loads `ws` only where there
 * is no global WebSocket (Node 20); a browser always has one, so this is never constructed.
 */
export default class UnavailableWebSocket {
  constructor() {
    throw new Error('the ws package is not available in a browser; use the global WebSocket');
  }
}
