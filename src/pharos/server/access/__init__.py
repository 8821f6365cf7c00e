"""Access and protection (issue 11): API keys with scopes, enforced in one middleware; the agent
registry. See docs/access.md."""
