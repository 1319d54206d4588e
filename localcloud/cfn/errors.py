"""The CloudFormation engine's errors: a template it cannot deploy, a reference to what is not made yet."""

from __future__ import annotations

__all__ = ["TemplateError", "Unresolved"]


class TemplateError(ValueError):
    """The template (or a parameter) is not something the local cloud can deploy; says why."""


class Unresolved(TemplateError):
    """A Ref/GetAtt to a resource that has not been made (recorded) yet."""
