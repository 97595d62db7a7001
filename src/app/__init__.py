"""Composition: the DI container, the web app, the CLI. The only package that imports modules."""
