"""Inspection jobs: recipes, region rules, detect -> classify, counters, image archive, hard examples."""
