"""wf: Postgres-native orchestration of Supabase Edge Functions."""

from __future__ import annotations

__version__ = "0.1.0"
