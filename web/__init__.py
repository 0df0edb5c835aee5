"""The web UI's templates and static files, installed as the package data `appliance.web`
(pyproject.toml maps this directory to it) and found through importlib.resources (appliance/api/app.py)."""
