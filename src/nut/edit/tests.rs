//! Property tests of the editor.
