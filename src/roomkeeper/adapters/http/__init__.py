"""The HTTP API on Quart-Trio: ``create_app(deployment)`` and nothing global."""

from .app import DEFAULT_MAX_BODY, create_app
from .openapi import openapi_document

__all__ = ["DEFAULT_MAX_BODY", "create_app", "openapi_document"]
