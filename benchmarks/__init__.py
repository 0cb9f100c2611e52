"""Measurements that are not tests: ``bench`` (a login storm, twostep against an inline
baseline) and ``sandbox_throughput``."""
