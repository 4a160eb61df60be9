"""The benchmark workloads (asyncio and Trio versions) and their helpers."""
