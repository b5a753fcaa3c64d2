"""Shared code for Switchboard services: contracts (one module per subject family),
JetStream definitions, settings, NATS/Valkey helpers and telemetry.

A service imports from here and never from another service.
"""
