"""A run folder: typed artifacts passed between notebooks (`folder.Run`), durable stores (scores, embeddings,
tags, judge votes), the papermill runner, the HTML report and the export of curated data."""
