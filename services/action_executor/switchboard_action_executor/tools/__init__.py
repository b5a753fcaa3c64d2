"""The built-in tools, bound to their adapters (`build_registry`)."""
