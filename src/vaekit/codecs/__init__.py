"""Entropy coding and the compressed file format.

    from vaekit.codecs import container, lossless
    box = lossless.compress(run, images, names)        # bits-back ANS with the run's VAE
    container.write("digits.vkz", box)
    images, names = lossless.decompress(run, container.read("digits.vkz"))

`ans` holds the small push/pop codecs (on constriction's ANS stack), `bitsback` composes them
into BB-ANS for a VAE, `container` is the .vkz file, `images` reads and writes exact pixels.
"""
