"""Access: the access-request form and its states, custodian decisions, projects, workspaces."""
