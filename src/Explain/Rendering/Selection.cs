namespace SaliencyService.Explain.Rendering;

/// <summary>Order statistics without a full sort.</summary>
public static class Selection
{
    /// <summary>
    /// The k-th smallest value (0-based) in the order <see cref="Array.Sort(Array)"/> gives (NaN
    /// first), reordering <paramref name="values"/>: Hoare's selection with a median-of-three pivot,
    /// expected linear time where sorting a map's 50k values took milliseconds.
    /// </summary>
    public static double Smallest(double[] values, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(k, values.Length);
        if (k == values.Length - 1) return Largest(values); // a clip at the 100th percentile (Grad-CAM's overlay)
        int low = 0, high = values.Length - 1;
        while (low < high)
        {
            var pivot = MedianOfThree(values[low], values[low + (high - low) / 2], values[high]);
            int i = low, j = high;
            while (i <= j)
            {
                while (values[i].CompareTo(pivot) < 0) i++;
                while (values[j].CompareTo(pivot) > 0) j--;
                if (i > j) break;
                (values[i], values[j]) = (values[j], values[i]);
                i++;
                j--;
            }
            // [low, j] ≤ pivot ≤ [i, high]; between them, values equal to the pivot.
            if (k <= j) high = j;
            else if (k >= i) low = i;
            else return values[k];
        }
        return values[k];
    }

    private static double Largest(double[] values)
    {
        var largest = values[0];
        foreach (var v in values)
            if (v.CompareTo(largest) > 0) largest = v;
        return largest;
    }

    private static double MedianOfThree(double a, double b, double c) =>
        a.CompareTo(b) < 0
            ? b.CompareTo(c) < 0 ? b : a.CompareTo(c) < 0 ? c : a
            : a.CompareTo(c) < 0 ? a : b.CompareTo(c) < 0 ? c : b;
}
