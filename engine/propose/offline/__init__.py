"""The offline proposer (program mutations with no LLM), split by job: `proposer` chooses and checks an edit,
`locate` finds statements and writes edits as SEARCH/REPLACE, `mutations` changes expressions, `statements`
changes whole statements, `recombine` crosses parents over, `literals` searches a program's numbers (coordinates of
a construction) with steps adapted to the trusted score, `walk` keeps the proposer's own current point of a
construction (a (1+1) search that accepts equal scores), `follow` follows up its moves of single points (an
accepted one made again, longer; a refused one mirrored), `blocks` mutates a project's marked blocks."""

from evoforge.engine.propose.offline.blocks import BlockMutator
from evoforge.engine.propose.offline.proposer import (
    KINDS,
    AstMutator,
    NoMutationFound,
    OfflineProposal,
)

__all__ = ["KINDS", "AstMutator", "BlockMutator", "NoMutationFound", "OfflineProposal"]
