using SaliencyService.Api.Errors;
using SaliencyService.Api.Models;
using Xunit;

namespace SaliencyService.Tests;

public sealed class ModelNamesTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("resnet18")]
    [InlineData("seed_cnn.v2-final")]
    [InlineData("0")]
    public void Accepts_the_contract_pattern(string name) => Assert.True(ModelNames.IsValid(name));

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("../x")]
    [InlineData("x/y")]
    [InlineData("x\\y")]
    [InlineData(".staging")]
    [InlineData("_x")]
    [InlineData("Caps")]
    [InlineData("tab\t")]
    [InlineData("x\n")]
    public void Refuses_anything_else(string name) => Assert.False(ModelNames.IsValid(name));

    [Theory]
    [InlineData("ResNet50.onnx", "resnet50")]
    [InlineData("/tmp/upload/My.Model.ONNX", "my.model")]
    [InlineData("C:model.onnx", "c:model")]
    public void Derives_names_from_file_names(string fileName, string expected)
    {
        if (expected.Contains(':'))
            Assert.Throws<ProblemException>(() => ModelNames.FromFileName(fileName));
        else
            Assert.Equal(expected, ModelNames.FromFileName(fileName));
    }
}
