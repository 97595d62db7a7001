"""The assembly: catalog, DI container, topology, web app, gateway, health, cli.

The only package that imports modules; nothing imports it but its own entry points.
"""
