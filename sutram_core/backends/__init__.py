"""Backends implementing Sutram's store interfaces."""
