from setuptools import find_packages, setup

setup(
    name="p2pchat",
    version="0.1.0",
    description="A serverless, IRC-style chat for a local network, on Twisted and urwid",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.10",
    # "twisted.plugins" is named by hand: find_packages() would drop it (no __init__.py of ours).
    packages=find_packages(include=["p2pchat", "p2pchat.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["p2pchat_plugin.py"]},
    scripts=["bin/p2pchat"],
    install_requires=[
        "twisted[tls]>=24.7",
        "urwid>=2.6",
        "platformdirs>=3",
        # the chat line codec (wire.py): decodes and checks a line in a tenth of json's time
        "msgspec>=0.18",
        # Ed25519 signatures through libsodium (identity.py, relay.py), sealed lines (sealed.py)
        "pynacl>=1.5",
        # --tor, --tor-control: its onion API is documented as not yet stable, so pinned
        "txtorcon>=26.6,<27",
        # the chunk hashes of a transfer between our peers (files/hashing.py): a third of
        # SHA-256's CPU per MB
        "blake3>=0.3",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6",
            # tests/test_types.py runs mypy over p2pchat/ (mypy.ini names the zope plugin)
            "mypy>=1.10",
            "mypy-zope>=1.0",
            # tests/test_readme.py: README.rst parses with no warning
            "docutils>=0.20",
        ],
    },
)
