"""context: owns the conversation. Turns a user message into a model request built from the
recent conversation, and a model result into a stored turn plus the client's terminal event."""
