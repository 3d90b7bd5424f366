"""The QuickFIX market data session that turns venue quotes into sequenced ticks."""
