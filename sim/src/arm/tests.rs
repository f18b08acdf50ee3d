//! Unit tests of the importer through its public entry points.

use super::*;
