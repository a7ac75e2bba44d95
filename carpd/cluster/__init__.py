"""The pair as one: each peer's status read over its status page's API (``client``),
what carpd keeps of it (``status``), and the verdict across the nodes (``verdict``)."""
