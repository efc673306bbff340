"""Generated from protos/agentic_labeling/v1 by `make protos`. Do not edit."""
