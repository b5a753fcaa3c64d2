"""The `switchboard` command: `up` runs everything on embedded servers, `chat` talks to it."""
