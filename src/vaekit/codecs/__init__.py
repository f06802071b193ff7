"""Entropy coding and the compressed file format.

    from vaekit.codecs import container, lossless
    box = lossless.compress(run, images, names)        # bits-back ANS with the run's VAE
    container.write("digits.vkz", box)
    images, names = lossless.decompress(run, container.read("digits.vkz"))

    box = lossy.compress(run, [image], ["photo.png"], quality=3)   # a learned transform codec
    images, names = lossy.decompress(run, box)

`ans` holds the small push/pop codecs (on constriction's ANS stack), `bitsback` composes them
into BB-ANS for a VAE, `lossy` codes the quantized latents of a transform codec
(vaekit.models.transform), `container` is the .vkz file, `images` reads and writes exact pixels.
"""
