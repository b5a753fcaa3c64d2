"""action_executor: decides and executes proposed actions (tool registry, autonomy policy,
approvals, audit). In the spine it consumes proposals and logs them."""
