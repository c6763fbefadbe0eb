#!/usr/bin/python3
"""A GTK3 drag source for the drag-and-drop end-to-end test: a window at (X, Y) with one button
that offers the given files as text/uri-list. Prints "ready" once shown. Debian's python3-gi
works with /usr/bin/python3 only.

usage: dnd_source.py X Y FILE...
"""
import sys
from pathlib import Path

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402

x, y = int(sys.argv[1]), int(sys.argv[2])
uris = [Path(p).resolve().as_uri() for p in sys.argv[3:]]

win = Gtk.Window(title="drag source")
win.set_default_size(160, 80)
btn = Gtk.Button(label="DRAG ME")
btn.drag_source_set(Gdk.ModifierType.BUTTON1_MASK, [], Gdk.DragAction.COPY)
btn.drag_source_add_uri_targets()
btn.connect("drag-data-get", lambda w, ctx, data, info, t: data.set_uris(uris))
win.add(btn)
win.move(x, y)
win.connect("destroy", Gtk.main_quit)
win.show_all()
GLib.timeout_add(300, lambda: print("ready", flush=True) and False)
GLib.timeout_add(60_000, Gtk.main_quit)
Gtk.main()
