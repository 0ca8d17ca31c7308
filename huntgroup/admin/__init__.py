"""The operators' HTTP listener (``server.admin``): health, metrics, control API, wallboard."""
