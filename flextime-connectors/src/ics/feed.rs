//! ICS feed import (placeholder until the HTTP toolkit lands).
