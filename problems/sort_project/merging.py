"""Merging two sorted runs of indices into one, comparing them only through `less(i, j)`."""


def merge(left, right, less):
    """One ascending run from two ascending runs (an item of `left` goes first on ties)."""
    # EVOLVE-BLOCK-START
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if less(right[j], left[i]):
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out
    # EVOLVE-BLOCK-END
