"""Clinician review: a small web application for blinded human evaluation of model outputs (``clinforge review``).

Modules: ``review_db`` (SQLAlchemy models, engine, Alembic migrations), ``review_auth`` (passwords, sessions, CSRF,
login rate limit), ``review_studies`` (studies from evaluation runs or exchange files, assignment, ratings),
``review_results`` (summaries, agreement, Bradley-Terry, plots, exports), ``review_web`` (the FastAPI app),
``review_server`` (uvicorn on loopback with a clean SIGTERM drain). See docs/review.md.
"""
