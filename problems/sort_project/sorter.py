"""A small comparison sort: merge sort over runs of indices, with short runs sorted by insertion.

`sort_counted(values)` returns the indices of `values` in ascending order of value and how many comparisons it
made. The items are compared only through `less(i, j)`, which counts each call: the code between the evolve
markers sees indices and `less`, never the values, so the count is the whole cost of the order it finds.
"""

from merging import merge

# EVOLVE-BLOCK-START settings
CUTOFF = 64  # runs of at most this many items are sorted by insertion; longer ones are split in two and merged
# EVOLVE-BLOCK-END


def sort_counted(values):
    """The indices of `values` in ascending order of value, and the number of comparisons it took."""
    counter = [0]

    def less(i, j):
        counter[0] += 1
        return values[i] < values[j]

    order = sort_indices(list(range(len(values))), less)
    return {"order": [int(i) for i in order], "comparisons": counter[0]}


def sort_indices(items, less):
    """`items` (indices) in ascending order, compared with `less(i, j)` only."""
    if len(items) <= max(CUTOFF, 1):
        return sort_small(items, less)
    middle = len(items) // 2
    return merge(sort_indices(items[:middle], less), sort_indices(items[middle:], less), less)


def sort_small(items, less):
    """A short run sorted by insertion."""
    # EVOLVE-BLOCK-START small
    out = []
    for item in items:
        position = len(out)
        while position > 0 and less(item, out[position - 1]):
            position -= 1
        out.insert(position, item)
    return out
    # EVOLVE-BLOCK-END


if __name__ == "__main__":
    print(sort_counted([5, 3, 9, 1, 4]))
