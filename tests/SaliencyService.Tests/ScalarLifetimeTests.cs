using Mono.Cecil;
using SaliencyService.Explain.Torch;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// No code of ours hands libtorch a TorchSharp <see cref="TorchSharp.Scalar"/> that nothing holds
/// (see <see cref="Scalars"/>): a garbage collection on another thread can free one while libtorch
/// reads it, which failed CI once in thousands of runs of a test. A race that rare cannot be
/// tested by running it, so this reads the IL: outside <see cref="Scalars"/>, no method makes a
/// Scalar or calls a TorchSharp method that makes one for itself (as <c>a + b</c> does for its alpha).
/// </summary>
public sealed class ScalarLifetimeTests
{
    private static readonly string[] Assemblies =
        ["SaliencyService.Explain", "SaliencyService.Api", "SaliencyService.Contracts", "SaliencyService.Tests"];

    [Fact]
    public void Only_Scalars_makes_a_scalar_for_libtorch()
    {
        using var resolver = new DefaultAssemblyResolver();
        resolver.AddSearchDirectory(AppContext.BaseDirectory);
        using var torchSharp = ModuleDefinition.ReadModule(typeof(TorchSharp.Scalar).Assembly.Location, new() { AssemblyResolver = resolver });
        var makers = MethodsThatMakeAScalar(torchSharp);
        // The scan sees what it guards against: TorchSharp's tensor + tensor makes its alpha.
        Assert.Contains("TorchSharp.torch/Tensor TorchSharp.torch/Tensor::op_Addition(TorchSharp.torch/Tensor,TorchSharp.torch/Tensor)", makers);

        var offenders = new List<string>();
        foreach (var name in Assemblies)
        {
            var path = Path.Combine(AppContext.BaseDirectory, name + ".dll");
            // The symbols, where the build wrote them, name each offender's file and line.
            using var module = ModuleDefinition.ReadModule(path,
                new ReaderParameters { AssemblyResolver = resolver, ReadSymbols = File.Exists(Path.ChangeExtension(path, ".pdb")) });
            foreach (var method in AllMethods(module))
            {
                var inScalars = Outermost(method.DeclaringType).FullName == typeof(Scalars).FullName;
                foreach (var instruction in method.Body.Instructions)
                    if (instruction.Operand is MethodReference called
                        && ((MakesAScalar(called) && !inScalars) || makers.Contains(Resolved(called))))
                        offenders.Add($"{Where(method, instruction)}: {method.DeclaringType.Name}.{method.Name} calls {called.DeclaringType.Name}.{called.Name}");
            }
        }
        Assert.True(offenders.Count == 0, "Scalars nothing holds (use Scalars instead):\n" + string.Join("\n", offenders.Distinct()));
    }

    /// <summary>TorchSharp's methods that make a Scalar, directly or through another of its own.</summary>
    /// <returns>Their full names.</returns>
    private static HashSet<string> MethodsThatMakeAScalar(ModuleDefinition torchSharp)
    {
        var methods = AllMethods(torchSharp).ToList();
        var makers = methods.Where(m => m.Body.Instructions.Any(i => i.Operand is MethodReference r && MakesAScalar(r)))
            .Select(m => m.FullName).ToHashSet();
        for (var grown = true; grown;)
        {
            grown = false;
            foreach (var method in methods)
                if (!makers.Contains(method.FullName) && method.Body.Instructions.Any(i => i.Operand is MethodReference r && makers.Contains(Resolved(r))))
                    grown |= makers.Add(method.FullName);
        }
        return makers;
    }

    private static bool MakesAScalar(MethodReference method) => method.DeclaringType.FullName switch
    {
        "TorchSharp.Scalar" => method.Name == "op_Implicit",
        "TorchSharp.ScalarExtensionMethods" => method.Name.StartsWith("ToScalar", StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>The full name of a TorchSharp method's definition (a generic one's, for an instance of it); "" for others'.</summary>
    private static string Resolved(MethodReference method)
    {
        if (method.DeclaringType.Scope.Name is not ("TorchSharp" or "TorchSharp.dll")) return "";
        try { return method.Resolve()?.FullName ?? method.FullName; }
        catch (AssemblyResolutionException) { return method.FullName; }
    }

    private static IEnumerable<MethodDefinition> AllMethods(ModuleDefinition module) =>
        module.Types.SelectMany(Nested).SelectMany(t => t.Methods).Where(m => m.HasBody);

    private static IEnumerable<TypeDefinition> Nested(TypeDefinition type) => type.NestedTypes.SelectMany(Nested).Prepend(type);

    private static TypeDefinition Outermost(TypeDefinition type) => type.DeclaringType is { } outer ? Outermost(outer) : type;

    private static string Where(MethodDefinition method, Mono.Cecil.Cil.Instruction instruction)
    {
        for (var at = instruction; at is not null; at = at.Previous)
            if (method.DebugInformation.GetSequencePoint(at) is { IsHidden: false } point)
                return $"{Path.GetFileName(point.Document.Url)}:{point.StartLine}";
        return "?";
    }
}
