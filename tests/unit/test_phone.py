import phonenumbers
import pytest

from shared.errors import InvalidPhoneNumber
from shared.kit.phone import mask_e164, parse_phone


class TestParsePhone:
    @pytest.mark.parametrize(
        ("raw", "e164", "region"),
        [
            ("+14155550123", "+14155550123", "US"),
            (" +1 (415) 555-0123 ", "+14155550123", "US"),
            ("+44 20 7946 0958", "+442079460958", "GB"),
            ("+4915112345678", "+4915112345678", "DE"),
        ],
    )
    def test_normalises_to_e164(self, raw: str, e164: str, region: str) -> None:
        phone = parse_phone(raw)
        assert (phone.e164, phone.region) == (e164, region)

    @pytest.mark.parametrize(
        "raw", ["12", "", "   ", "hello", "+1", "+999123456789", "4155550123", "+1" + "5" * 40]
    )
    def test_refuses_what_is_not_a_valid_number(self, raw: str) -> None:
        with pytest.raises(InvalidPhoneNumber):
            parse_phone(raw)


class TestMask:
    def test_keeps_country_and_area_hides_the_line(self) -> None:
        assert mask_e164("+14155550123") == "+1415•••••23"

    @pytest.mark.parametrize(
        "number", ["+14155550123", "+442079460958", "+4915112345678", "+33612345678"]
    )
    def test_never_shows_more_than_a_few_digits_of_the_subscriber(self, number: str) -> None:
        masked = mask_e164(number)
        shown_digits = sum(ch.isdigit() for ch in masked)
        assert "•" in masked
        assert shown_digits <= len(number) - 1 - 4
        assert masked[-2:] == number[-2:]

    def test_garbage_is_fully_masked(self) -> None:
        assert mask_e164("not a number") == "••••"

    def test_the_calling_code_kept_is_the_one_a_parse_finds(self) -> None:
        for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            number = f"+{code}{'2' * (12 - len(str(code)))}"
            parsed = str(phonenumbers.parse(number).country_code)
            national = number[1 + len(parsed) :]
            assert mask_e164(number).startswith(f"+{parsed}{national[:3]}•"), number
