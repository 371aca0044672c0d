#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Embeds a text file as a C string: embed.py INPUT OUTPUT SYMBOL."""
import sys

src, out, sym = sys.argv[1:4]
text = open(src, encoding='utf-8').read()
with open(out, 'w', encoding='utf-8') as f:
    f.write('/* Generated from %s by embed.py. */\n' % src.split('/')[-1])
    f.write('const char %s[] =\n' % sym)
    for line in text.splitlines(True):
        f.write('\t"%s"\n' % line.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n'))
    f.write(';\n')
