"""The web app (``okrsync serve``): a FastAPI JSON API and the pages that use it."""
