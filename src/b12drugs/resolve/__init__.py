"""Resolution: from what an order says (codes, text) to RxNorm ingredients.

Steps of the chain are registered through the ``b12drugs_resolvers`` hook:
the offline knowledge base (:mod:`.offline`), the local RxNorm index
(:mod:`.local_index`) and the RxNav REST client (:mod:`.rxnav`).
"""
