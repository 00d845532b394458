"""Collection-wide curation passes over built shards: near-duplicates, decontamination, quality
signals. Each writes its own files under `DIR/curation/`, keyed by record id; shards never change.
"""
