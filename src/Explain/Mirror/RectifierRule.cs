namespace SaliencyService.Explain.Mirror;

/// <summary>How rectifiers (Relu, and Clip with min 0) pass gradients back.</summary>
public enum RectifierRule
{
    /// <summary>True gradients everywhere.</summary>
    Gradient,

    /// <summary>grad_in = max(grad_out, 0) × 1[local derivative &gt; 0].</summary>
    GuidedBackprop,

    /// <summary>grad_in = max(grad_out, 0).</summary>
    Deconvnet,
}
