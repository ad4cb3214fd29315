"""The HTTP edges of the bridge: REST (rooms), SSE (events), the websocket (ws), the A2E pass-through, auth, ops."""
