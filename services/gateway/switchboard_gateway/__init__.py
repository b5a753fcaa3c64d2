"""gateway: the WebSocket and REST edge. Validates client input, turns a user message into a
`TurnRequest` command, and relays the turn's stream events to the socket (with resume)."""
