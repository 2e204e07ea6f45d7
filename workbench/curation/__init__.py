"""The curation loop of the paper: attribute tagging, error clusters, retrieval, review (people, LLM judge),
Stage 1, Stage 2, the pipeline that chains them, the known-truth experiment, and the curation figures."""
